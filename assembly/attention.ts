// kernels: attention (being written)
