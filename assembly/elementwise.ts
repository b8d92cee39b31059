// kernels: elementwise (being written)
