"""leadtime.emulator"""
