"""Local emulator of Entra ID's token endpoint and a slice of Microsoft Graph."""
