"""The site as the server sees it: DATA/overlayd.yaml, and the host files (dnsmasq, hosts) rendered
from the nodes.
"""
