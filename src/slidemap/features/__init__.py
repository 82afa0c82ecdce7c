"""slidemap.features"""
