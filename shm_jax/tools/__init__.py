"""Tools beside the library (ahead-of-time compiles, Colab setup); nothing in the library imports them."""
