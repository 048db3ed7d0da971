// The sound of an incoming call, made with Web Audio (no file to fetch): the two tones of a phone
// ringing, 1.5 s on and 2.5 s off. A browser may keep it silent until the page was clicked once.
let context: AudioContext | undefined;
let timer: ReturnType<typeof setInterval> | undefined;

function ringOnce(audio: AudioContext) {
  const gain = audio.createGain();
  gain.gain.value = 0.06;
  gain.connect(audio.destination);
  for (const frequency of [440, 480]) {
    const tone = audio.createOscillator();
    tone.frequency.value = frequency;
    tone.connect(gain);
    tone.start();
    tone.stop(audio.currentTime + 1.5);
  }
}

export function startRingtone() {
  stopRingtone();
  if (typeof AudioContext === 'undefined') return;
  const audio = new AudioContext();
  context = audio;
  ringOnce(audio);
  timer = setInterval(() => ringOnce(audio), 4_000);
}

export function stopRingtone() {
  clearInterval(timer);
  void context?.close().catch(() => {});
  context = undefined;
}
