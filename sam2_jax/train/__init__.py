"""Training: losses, optimizer, prompt simulation, train step."""
