"""slidemap.models"""
