"""What a trained model does to data: errors, sparsity, PCA and linear probes; corruption and PSNR.
"""
