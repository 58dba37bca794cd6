"""``hami top``: who books and who uses how much of which device, per node, live from the API
server's watches and the node monitors' metrics. The demo prints its device table with the same code."""
