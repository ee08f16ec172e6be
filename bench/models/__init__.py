"""Model building blocks shared by the method plugins."""
