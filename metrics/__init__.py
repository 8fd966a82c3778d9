"""metrics/: tensors in, numbers out: similarity, readouts, statistics."""
