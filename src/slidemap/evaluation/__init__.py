"""slidemap.evaluation"""
