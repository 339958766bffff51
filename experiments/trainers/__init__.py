"""Model families with one shape: sklearn MLP, Keras ANN and 1D-CNN, H2O AutoML."""
