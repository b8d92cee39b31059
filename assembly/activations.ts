// kernels: activations (being written)
