"""leadtime.handlers"""
