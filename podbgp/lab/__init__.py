"""The lab: nodes, pods and real BGP peers in network namespaces.

`netns` is the plumbing every namespace test and `podbgp lab` share: named
namespaces created under one prefix, commands run inside them, veth links, and a
cleanup that kills what runs inside before the namespace is deleted (RECIPES.md §1).
"""
