// hls.js settings for live streams, shared by the watch page and the latency benchmark
// (loadtests/bench_glass.py), so what is measured is what viewers get.

// Low-latency mode follows the playlist's parts and plays PART-HOLD-BACK behind the newest.
// hls.js's own catch-up is off (rate 1): it only speeds up with more than a second buffered
// ahead, which a low-latency stream never has, and it resets any other rate; keepLive does it.
// After a stall hls.js plays further behind: a quarter of a second more each time (not its
// default second), so one hiccup does not cost a viewer a second for the rest of the show.
export const liveOptions = {
  lowLatencyMode: true,
  maxLiveSyncPlaybackRate: 1,
  liveSyncOnStallIncrease: 0.25,
};

const EVERY_MS = 250;
const SLACK_S = 0.1; // this far behind the target is on target
const MIN_AHEAD_S = 0.3; // never speed up into a stall
const MAX_RATE = 1.25;

/**
 * Keep a live player near hls.js's target latency: a player starts behind it (the video
 * element takes a moment to start while the stream goes on) and falls behind after a stall.
 * While it is behind and has media buffered, it plays a little faster (up to 1.25x; browsers
 * keep the pitch). Returns a function that stops it.
 */
export function keepLive(hls, video) {
  const timer = setInterval(() => {
    const behind = (hls.latency || 0) - (hls.targetLatency || 0);
    const ranges = video.buffered;
    const ahead = ranges.length ? ranges.end(ranges.length - 1) - video.currentTime : 0;
    let rate = 1;
    if (!video.paused && behind > SLACK_S && ahead > MIN_AHEAD_S) {
      rate = Math.min(MAX_RATE, Math.round((1 + Math.max(0.05, behind / 2)) * 20) / 20);
    }
    if (video.playbackRate !== rate) video.playbackRate = rate;
  }, EVERY_MS);
  return () => {
    clearInterval(timer);
    video.playbackRate = 1;
  };
}
