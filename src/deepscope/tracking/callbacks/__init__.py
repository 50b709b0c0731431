"""Callbacks for the libraries people train with. Each module imports its library lazily:

- `deepscope.tracking.callbacks.lightning.DeepscopeLogger` (PyTorch Lightning logger)
- `deepscope.tracking.callbacks.keras.DeepscopeCallback` (Keras 3)
- `deepscope.tracking.callbacks.huggingface.DeepscopeCallback` (transformers `Trainer`)
"""
