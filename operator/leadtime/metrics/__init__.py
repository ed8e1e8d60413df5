"""leadtime.metrics"""
