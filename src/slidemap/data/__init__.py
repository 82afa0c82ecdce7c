"""slidemap.data"""
