"""Stateful predictors over the pure model: image, video, automatic masks."""
