"""Tracker stores: where conversations' events are kept between turns and restarts."""
