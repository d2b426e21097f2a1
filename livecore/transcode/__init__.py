"""Media work in worker processes: the processes and their pipes, the process pool, and the
transcoders that turn a stream's video into H.264 (a VP8 publisher's source, the renditions).

Below sfu/ and hls/, which both use it: sfu/ to make a VP8 publisher's video H.264, hls/ for
the renditions ladder, packaging processes and thumbnails. Imports neither of them (nor
anything above); the worker processes import only this package and PyAV.
"""
