"""leadtime.sim"""
