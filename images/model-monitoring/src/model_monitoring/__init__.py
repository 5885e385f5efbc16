"""ml-platform's model monitoring: the capture proxy (`capture`) that samples a model's traffic into the model
store, and the monitor job (`job`) that compares captured inputs with reference data (`drift`), joins captured
predictions with labels that arrive later (`feedback`) and publishes both to Prometheus through a Pushgateway."""
