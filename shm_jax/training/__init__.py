"""The host loop: checkpoints, run directories, logging, evaluation, sharding and multi-process training."""
