"""Model families with one shape: sklearn MLP and logistic regression, Keras ANN and
1D-CNN, H2O AutoML."""
