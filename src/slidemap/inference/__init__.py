"""slidemap.inference"""
