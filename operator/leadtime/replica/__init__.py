"""leadtime.replica"""
