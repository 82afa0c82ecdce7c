"""slidemap.plots"""
