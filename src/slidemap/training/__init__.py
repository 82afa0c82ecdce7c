"""slidemap.training"""
