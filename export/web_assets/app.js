// The page: loads model.json and model.onnx, runs the network with onnxruntime-web (WebGPU when the
// browser has it, else WebAssembly) on a photo or the camera, and draws the result. `self.fastst`
// exposes the state for tests and benchmarks; `?backend=wasm|webgpu` and `?threads=N` override the choice.
(function () {
  'use strict';

  const $ = (id) => document.getElementById(id);
  const C = self.FaststControls;
  const params = new URLSearchParams(location.search);
  const MIN_SIDE = 16;
  const app = {
    manifest: null, rows: [], groups: [], session: null, backend: null, threads: null,
    source: null, name: 'photo', camera: null, busy: false, again: false,
    runs: 0, frames: 0, fps: null, lastMs: null, size: null, strokeSet: false,
  };
  self.fastst = app;

  function message(e) {
    // One readable line: onnxruntime's errors carry a C++ source location and signature before the reason.
    const text = (e && e.message) ? e.message : String(e);
    const reason = text.replace(/^[\s\S]*ERROR_MESSAGE:\s*/, '').replace(/^\S+\.(cc|h|cpp):\d+\s+[\s\S]*?\)\s+(?=[A-Z])/, '');
    return reason.trim() || text;
  }

  function setState(state) {
    document.body.dataset.state = state;
  }

  function fail(text) {
    const box = $('error');
    box.textContent = text;
    box.hidden = false;
    setState('error');
  }

  function clearError() {
    $('error').hidden = true;
    $('error').textContent = '';
  }

  async function fetchOk(url) {
    let response;
    try {
      response = await fetch(url);
    } catch (e) {
      throw new Error(`cannot fetch ${url} (${message(e)})`);
    }
    if (!response.ok) throw new Error(`cannot fetch ${url} (HTTP ${response.status})`);
    return response;
  }

  // ------------------------------------------------------------------ model and backend

  async function createSession(bytes) {
    const isolated = self.crossOriginIsolated === true;
    const threads = Number(params.get('threads')) || (isolated ? Math.min(navigator.hardwareConcurrency || 1, 4) : 1);
    ort.env.wasm.numThreads = threads;
    ort.env.wasm.wasmPaths = new URL('ort/', location.href).href;
    ort.env.logLevel = 'error';
    const want = params.get('backend');
    let gpuNote = want === 'wasm' ? 'WebGPU not tried (?backend=wasm)' : 'this browser has no WebGPU';
    if (want !== 'wasm' && navigator.gpu) {
      try {
        const adapter = await navigator.gpu.requestAdapter();
        if (!adapter) throw new Error('no WebGPU adapter');
        app.session = await ort.InferenceSession.create(bytes, {executionProviders: ['webgpu']});
        app.backend = 'webgpu';
        $('backend').textContent = 'Running on WebGPU.';
        return;
      } catch (e) {
        gpuNote = `WebGPU did not start: ${message(e)}`;
      }
    }
    if (want === 'webgpu') throw new Error(gpuNote);
    app.session = await ort.InferenceSession.create(bytes, {executionProviders: ['wasm']});
    app.backend = 'wasm';
    app.threads = threads;
    const more = (!isolated && !params.get('threads'))
      ? ' (not cross-origin isolated: serve the page with `fastst serve` for more threads)' : '';
    $('backend').textContent = `Running on WebAssembly, ${threads} thread${threads > 1 ? 's' : ''}${more}; ${gpuNote}.`;
  }

  function setupControls(manifest) {
    app.manifest = manifest;
    app.rows = manifest.rows;
    app.groups = C.groups(manifest.rows);
    $('title').textContent = manifest.title;
    document.title = `${manifest.title} · fastst`;
    $('runtime').textContent = manifest.runtime;
    for (const select of [$('style'), $('style2')]) {
      for (const g of app.groups) select.add(new Option(g.name, g.name));
    }
    const strength = $('strength');
    strength.max = String(C.maxStrength(app.rows));
    strength.value = String(manifest.default_strength);
    $('strength-hint').textContent = C.identityRow(app.rows) >= 0
      ? '0 gives the photo back, 1 the style, above 1 exaggerates it.'
      : 'Mixes the stylized picture with the photo: 0 is the photo.';
    $('stroke-row').hidden = !app.groups.some((g) => g.rows.length > 1);
    showLabels();
  }

  function showLabels() {
    const a = $('style').value;
    const b = $('style2').value;
    const t = Number($('blend').value);
    $('blend-row').hidden = !b || b === a;
    $('blend-value').textContent = `${Math.round(100 * (1 - t))} % ${a}, ${Math.round(100 * t)} % ${b}`;
    $('strength-value').textContent = Number($('strength').value).toFixed(2);
    const g = app.groups.find((x) => x.name === a);
    if (!app.strokeSet && g) $('stroke').value = String(C.defaultStroke(app.rows, g.rows));
    $('stroke-value').textContent = Number($('stroke').value).toFixed(2);
    const thumb = g ? app.rows[g.rows[0]].thumbnail : null;
    $('style-thumb').hidden = !thumb;
    if (thumb) {
      $('style-thumb').src = thumb;
      $('style-thumb').alt = `${a} (the style image)`;
    }
  }

  function controls() {
    const a = $('style').value;
    const b = $('style2').value;
    const t = Number($('blend').value);
    const blend = {};
    if (b && b !== a) {
      blend[a] = 1 - t;
      blend[b] = t;
    } else {
      blend[a] = 1;
    }
    const label = Object.entries(blend).filter(([, w]) => w > 0)
      .map(([n, w]) => (Object.keys(blend).length > 1 ? `${n}${Math.round(100 * w)}` : n)).join('+');
    // Until the stroke slider is moved, each style keeps its own default stroke, as `fastst infer` does.
    const stroke = app.strokeSet ? Number($('stroke').value) : null;
    return Object.assign(C.compose(app.rows, blend, stroke, Number($('strength').value)), {label});
  }

  // ------------------------------------------------------------------ running the network

  const work = document.createElement('canvas');
  const workContext = work.getContext('2d', {willReadFrequently: true});

  function grab(source, width, height) {
    // The source at the size cap (long side), composited on white like fastst's image loader.
    const cap = Number($('size').value);
    let w = width;
    let h = height;
    if (cap > 0 && Math.max(w, h) > cap) {
      const f = cap / Math.max(w, h);
      w = Math.max(1, Math.round(w * f));
      h = Math.max(1, Math.round(h * f));
    }
    if (Math.min(w, h) < MIN_SIDE) throw new Error(`the picture is ${w}×${h} px: the model needs at least ${MIN_SIDE} px a side`);
    work.width = w;
    work.height = h;
    workContext.fillStyle = '#fff';
    workContext.fillRect(0, 0, w, h);
    workContext.imageSmoothingEnabled = true;
    workContext.imageSmoothingQuality = 'high';
    workContext.drawImage(source, 0, 0, w, h);
    return workContext.getImageData(0, 0, w, h);
  }

  async function stylize(image) {
    // ImageData -> ImageData: the network on the photo, then the pixel blend when the model has no identity row.
    const {width: w, height: h, data} = image;
    const n = w * h;
    const x = new Float32Array(3 * n);
    for (let i = 0, j = 0; i < n; i++, j += 4) {
      x[i] = data[j] / 255;
      x[n + i] = data[j + 1] / 255;
      x[2 * n + i] = data[j + 2] / 255;
    }
    const {weights, pixelBlend, label} = controls();
    const t0 = performance.now();
    const result = await app.session.run({
      image: new ort.Tensor('float32', x, [1, 3, h, w]),
      style: new ort.Tensor('float32', weights, [1, weights.length]),
    });
    app.lastMs = performance.now() - t0;
    const y = result.stylized.data;
    const out = new ImageData(w, h);
    const o = out.data;
    const s = pixelBlend;
    for (let i = 0, j = 0; i < n; i++, j += 4) {
      for (let c = 0; c < 3; c++) {
        const k = c * n + i;
        const v = s === 1 ? y[k] : x[k] + s * (y[k] - x[k]);
        o[j + c] = Math.round(Math.min(1, Math.max(0, v)) * 255);
      }
      o[j + 3] = 255;
    }
    if (result.stylized.dispose) result.stylized.dispose();
    app.label = label;
    return out;
  }

  function draw(image) {
    const canvas = $('output');
    canvas.width = image.width;
    canvas.height = image.height;
    canvas.getContext('2d').putImageData(image, 0, 0);
    canvas.setAttribute('aria-label', `Stylized picture, ${image.width}×${image.height} px, style ${app.label}`);
    $('placeholder').hidden = true;
    $('download').disabled = false;
    app.size = [image.width, image.height];
  }

  function schedule() {
    showLabels();
    if (!app.session || !app.source || app.camera) return;
    if (app.busy) {
      app.again = true;
      return;
    }
    runPhoto();
  }

  async function runPhoto() {
    app.busy = true;
    setState('running');
    try {
      do {
        app.again = false;
        const image = await stylize(grab(app.source, app.source.width, app.source.height));
        draw(image);
        app.runs += 1;
        $('status').textContent = `${image.width}×${image.height} px in ${Math.round(app.lastMs)} ms.`;
      } while (app.again && !app.camera);
      clearError();
      setState('done');
    } catch (e) {
      fail(`Could not stylize the picture: ${message(e)}`);
    } finally {
      app.busy = false;
    }
  }

  async function loadFile(file) {
    if (!file) return;
    if (file.type && !file.type.startsWith('image/')) {
      fail(`${file.name} is not an image.`);
      return;
    }
    let bitmap;
    try {
      bitmap = await createImageBitmap(file, {colorSpaceConversion: 'none', imageOrientation: 'from-image'});
    } catch (e) {
      fail(`Could not read ${file.name}: this browser cannot decode it as an image.`);
      return;
    }
    stopCamera();
    app.source = bitmap;
    app.name = file.name.replace(/\.[^.]*$/, '') || 'photo';
    clearError();
    schedule();
  }

  // ------------------------------------------------------------------ camera

  function pause() {
    return new Promise((resolve) => setTimeout(resolve, 0));
  }

  async function startCamera() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      fail('No camera access here: browsers allow it on https:// and http://localhost pages.');
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({video: {width: {ideal: 640}, height: {ideal: 480}}, audio: false});
    } catch (e) {
      fail(`No camera: ${message(e)}`);
      return;
    }
    const video = $('video');
    video.srcObject = stream;
    await video.play();
    app.camera = stream;
    app.frames = 0;
    app.fps = null;
    app.name = 'camera';
    clearError();
    $('camera').textContent = 'Stop camera';
    $('camera').setAttribute('aria-pressed', 'true');
    setState('camera');
    $('status').textContent = 'Camera on: every frame is stylized as it comes.';
    cameraLoop(stream, video);
  }

  async function cameraLoop(stream, video) {
    const times = [];
    while (app.camera === stream) {
      if (app.busy || video.readyState < 2) {
        await pause();
        continue;
      }
      app.busy = true;
      try {
        draw(await stylize(grab(video, video.videoWidth, video.videoHeight)));
      } catch (e) {
        app.busy = false;
        fail(`Camera frame failed: ${message(e)}`);
        stopCamera();
        return;
      }
      app.busy = false;
      app.frames += 1;
      $('output').dataset.frames = String(app.frames);
      times.push(performance.now());
      if (times.length > 11) times.shift();
      if (times.length >= 2) {
        app.fps = (times.length - 1) * 1000 / (times[times.length - 1] - times[0]);
        $('fps').textContent = `${app.fps.toFixed(1)} frames/s (${app.size[0]}×${app.size[1]} px)`;
      }
      await pause();
    }
  }

  function stopCamera() {
    if (!app.camera) return;
    for (const track of app.camera.getTracks()) track.stop();
    app.camera = null;
    $('video').srcObject = null;
    $('camera').textContent = 'Start camera';
    $('camera').setAttribute('aria-pressed', 'false');
    setState(app.source ? 'running' : 'ready');
    schedule();
  }

  // ------------------------------------------------------------------ wiring

  function download() {
    $('output').toBlob((blob) => {
      const a = document.createElement('a');
      a.href = URL.createObjectURL(blob);
      a.download = `${app.name}_${(app.label || 'stylized').replace(/[^A-Za-z0-9._+-]+/g, '-')}.png`;
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 60000);
    }, 'image/png');
  }

  function wire() {
    $('file').addEventListener('change', (e) => loadFile(e.target.files[0]));
    for (const zone of [$('drop'), $('stage')]) {
      zone.addEventListener('dragover', (e) => {
        e.preventDefault();
        zone.classList.add('over');
      });
      zone.addEventListener('dragleave', () => zone.classList.remove('over'));
      zone.addEventListener('drop', (e) => {
        e.preventDefault();
        zone.classList.remove('over');
        loadFile(e.dataTransfer.files[0]);
      });
    }
    $('camera').addEventListener('click', () => (app.camera ? stopCamera() : startCamera()));
    $('stroke').addEventListener('input', () => {
      app.strokeSet = true; // registered first: schedule() below then keeps the value the user chose
    });
    for (const id of ['style', 'style2', 'blend', 'strength', 'stroke', 'size']) {
      $(id).addEventListener('input', schedule);
    }
    $('download').addEventListener('click', download);
  }

  app.timeRun = async function (width, height, runs) {
    // Time `runs` network calls on a fixed width×height input (benchmarks).
    const n = 3 * width * height;
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) x[i] = ((i * 7919) % 1000) / 1000;
    const {weights} = controls();
    const feeds = {image: new ort.Tensor('float32', x, [1, 3, height, width]),
      style: new ort.Tensor('float32', weights, [1, weights.length])};
    const times = [];
    for (let k = 0; k < runs; k++) {
      const t0 = performance.now();
      await app.session.run(feeds);
      times.push(performance.now() - t0);
    }
    return {times, backend: app.backend, threads: app.threads, isolated: self.crossOriginIsolated === true};
  };

  async function main() {
    setState('loading');
    wire();
    try {
      if (typeof ort === 'undefined') throw new Error('the runtime (ort/ort.min.js) did not load');
      const manifest = await (await fetchOk('model.json')).json();
      setupControls(manifest);
      const bytes = new Uint8Array(await (await fetchOk(manifest.model)).arrayBuffer());
      await createSession(bytes);
    } catch (e) {
      $('backend').textContent = 'The model did not load.';
      fail(`Could not load the model: ${message(e)}`);
      return;
    }
    for (const id of ['style', 'style2', 'camera']) $(id).disabled = false;
    $('status').textContent = 'Ready: choose a photo or start the camera.';
    setState('ready');
  }

  app.ready = main();
})();
