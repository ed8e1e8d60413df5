"""leadtime.api"""
