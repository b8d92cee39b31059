// kernels: layernorm (being written)
