"""The offline plan: the real program under Pulumi's mock runtime, no cloud account, no Pulumi CLI."""
