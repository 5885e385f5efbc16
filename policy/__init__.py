"""The platform's CrossGuard policy pack; rules.py holds the policies, __main__.py serves them to Pulumi."""
