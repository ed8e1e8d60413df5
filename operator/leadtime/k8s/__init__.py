"""leadtime.k8s"""
