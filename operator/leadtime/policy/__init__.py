"""leadtime.policy"""
