"""Thermal face detection in whole camera frames, behind one interface.

`rule_based` finds faces in a temperature array by rules (no training); `trained` runs the
small trained detector (trained by `m3mstl.train.detector`, `m3mstl detector`). Both return
`Detection` boxes of the visible head; `head_box` maps a head box to the landmark-extent box
the landmark models were trained on.
"""
