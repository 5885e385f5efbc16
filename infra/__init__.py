"""The ml-platform Pulumi program, its typed stack configuration and its command line."""
