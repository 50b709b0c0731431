// A small WebGL 1 point renderer for the projector. Written here, not taken from a library:
// the dashboard's CSP forbids 'unsafe-eval' and regl (under regl-scatterplot) compiles its
// shaders' glue with `new Function`, which that CSP refuses.
//
// Every point is one GL point: position (x, y, z; z = 0 for 2-D), RGBA colour (bytes) and
// size (CSS px). The camera is a rotation (3-D), a zoom and a pan; positions are normalised
// by the caller into [-0.9, 0.9] and the square [-1, 1]^2 maps onto the shorter canvas side.
// Selected points are drawn again on top, larger with a dark ring; the others are dimmed.
// `project` maps a point to canvas pixels exactly as the vertex shader does (for picking,
// lasso and tests).

const VERT = `
attribute vec3 a_pos;
attribute vec4 a_color;
attribute float a_size;
uniform mat3 u_rot;
uniform vec2 u_pan;
uniform float u_zoom;
uniform vec2 u_aspect;
uniform float u_px;
uniform float u_sel;
uniform float u_dim;
varying vec4 v_color;
varying float v_ring;
varying float v_round;
void main() {
  vec3 q = u_rot * a_pos;
  gl_Position = vec4((q.xy * u_zoom + u_pan) * u_aspect, 0.0, 1.0);
  float s = a_size * u_px + u_sel * 4.0 * u_px;
  gl_PointSize = s;
  v_color = vec4(a_color.rgb, a_color.a * u_dim);
  v_ring = u_sel * min(0.9, 3.0 * u_px / s);
  v_round = s > 3.5 ? 1.0 : 0.0;
}`;

const FRAG = `
precision mediump float;
varying vec4 v_color;
varying float v_ring;
varying float v_round;
void main() {
  vec2 c = gl_PointCoord * 2.0 - 1.0;
  float r = dot(c, c);
  if (v_round > 0.5 && r > 1.0) discard;
  if (v_ring > 0.0 && r > (1.0 - v_ring) * (1.0 - v_ring)) gl_FragColor = vec4(0.07, 0.09, 0.15, 1.0);
  else gl_FragColor = v_color;
}`;

export interface Camera {
  zoom: number;
  panX: number;
  panY: number;
  yaw: number;
  pitch: number;
}

export const HOME: Camera = { zoom: 1, panX: 0, panY: 0, yaw: 0, pitch: 0 };

function compile(gl: WebGLRenderingContext, type: number, src: string): WebGLShader {
  const s = gl.createShader(type);
  if (s === null) throw new Error('cannot create a WebGL shader');
  gl.shaderSource(s, src);
  gl.compileShader(s);
  if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(`shader: ${gl.getShaderInfoLog(s) ?? ''}`);
  return s;
}

export class PointsRenderer {
  readonly gl: WebGLRenderingContext;
  private prog: WebGLProgram;
  private bufPos: WebGLBuffer;
  private bufColor: WebGLBuffer;
  private bufSize: WebGLBuffer;
  private bufSel: WebGLBuffer;
  private loc: Record<string, WebGLUniformLocation | null> = {};
  private attr: Record<string, number> = {};
  private uintIndex: boolean;
  /** drawn points */
  n = 0;
  private x: Float32Array = new Float32Array(0);
  private y: Float32Array = new Float32Array(0);
  private z: Float32Array | null = null;
  private nSel = 0;
  camera: Camera = { ...HOME };
  is3d = false;
  /** CPU time of the last frames' draw calls (ms), newest last */
  readonly frameMs: number[] = [];
  private pending = 0;
  private width = 1;
  private height = 1;
  private dpr = 1;

  constructor(readonly canvas: HTMLCanvasElement) {
    const gl = canvas.getContext('webgl', { antialias: false, preserveDrawingBuffer: true, premultipliedAlpha: false });
    if (gl === null) throw new Error('WebGL is not available in this browser');
    this.gl = gl;
    this.uintIndex = gl.getExtension('OES_element_index_uint') !== null;
    const prog = gl.createProgram();
    if (prog === null) throw new Error('cannot create a WebGL program');
    gl.attachShader(prog, compile(gl, gl.VERTEX_SHADER, VERT));
    gl.attachShader(prog, compile(gl, gl.FRAGMENT_SHADER, FRAG));
    gl.linkProgram(prog);
    if (!gl.getProgramParameter(prog, gl.LINK_STATUS)) throw new Error(`WebGL link: ${gl.getProgramInfoLog(prog) ?? ''}`);
    this.prog = prog;
    for (const u of ['u_rot', 'u_pan', 'u_zoom', 'u_aspect', 'u_px', 'u_sel', 'u_dim']) this.loc[u] = gl.getUniformLocation(prog, u);
    for (const a of ['a_pos', 'a_color', 'a_size']) this.attr[a] = gl.getAttribLocation(prog, a);
    const buf = () => {
      const b = gl.createBuffer();
      if (b === null) throw new Error('cannot create a WebGL buffer');
      return b;
    };
    [this.bufPos, this.bufColor, this.bufSize, this.bufSel] = [buf(), buf(), buf(), buf()];
  }

  /** Positions of the drawn points (normalised; z null for 2-D); `interleaved` (x, y, z per
   * point, as built by the caller) is uploaded as is instead of being built here. */
  setPoints(x: Float32Array, y: Float32Array, z: Float32Array | null, interleaved?: Float32Array): void {
    const gl = this.gl;
    const n = x.length;
    let pos = interleaved;
    if (pos === undefined || pos.length !== 3 * n) {
      pos = new Float32Array(n * 3);
      for (let j = 0; j < n; j++) {
        pos[3 * j] = x[j];
        pos[3 * j + 1] = y[j];
        pos[3 * j + 2] = z ? z[j] : 0;
      }
    }
    gl.bindBuffer(gl.ARRAY_BUFFER, this.bufPos);
    gl.bufferData(gl.ARRAY_BUFFER, pos, gl.STATIC_DRAW);
    [this.x, this.y, this.z, this.n] = [x, y, z, n];
    this.is3d = z !== null;
    this.nSel = 0;
  }

  /** RGBA bytes per drawn point. */
  setColors(rgba: Uint8Array): void {
    this.gl.bindBuffer(this.gl.ARRAY_BUFFER, this.bufColor);
    this.gl.bufferData(this.gl.ARRAY_BUFFER, rgba, this.gl.STATIC_DRAW);
  }

  /** Size in CSS pixels per drawn point. */
  setSizes(sizes: Float32Array): void {
    this.gl.bindBuffer(this.gl.ARRAY_BUFFER, this.bufSize);
    this.gl.bufferData(this.gl.ARRAY_BUFFER, sizes, this.gl.STATIC_DRAW);
  }

  /** Drawn-point indices to highlight (empty: none, nothing dimmed). */
  setSelected(indices: ArrayLike<number>): void {
    const gl = this.gl;
    const m = this.uintIndex ? indices.length : Math.min(indices.length, 0);
    gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, this.bufSel);
    gl.bufferData(gl.ELEMENT_ARRAY_BUFFER, Uint32Array.from(indices), gl.STATIC_DRAW);
    this.nSel = m;
  }

  /** Match the drawing buffer to the canvas's CSS size. */
  resize(): void {
    const r = this.canvas.getBoundingClientRect();
    this.dpr = window.devicePixelRatio || 1;
    this.width = Math.max(1, r.width);
    this.height = Math.max(1, r.height);
    const [w, h] = [Math.round(this.width * this.dpr), Math.round(this.height * this.dpr)];
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w;
      this.canvas.height = h;
    }
  }

  /** [sx, sy]: the NDC scale that maps the unit square onto the shorter side. */
  private aspect(): [number, number] {
    const s = Math.min(this.width, this.height);
    return [s / this.width, s / this.height];
  }

  private rot(): number[] {
    if (!this.is3d) return [1, 0, 0, 0, 1, 0, 0, 0, 1];
    const { yaw, pitch } = this.camera;
    const [cy, sy, cp, sp] = [Math.cos(yaw), Math.sin(yaw), Math.cos(pitch), Math.sin(pitch)];
    // rows: x' = cy x + sy z; y' = sp sy x + cp y - sp cy z; z' = -cp sy x + sp y + cp cy z
    // column-major for GL
    return [cy, sp * sy, -cp * sy, 0, cp, sp, sy, -sp * cy, cp * cy];
  }

  /** Canvas CSS pixel position of drawn point j (as the shader places it). */
  project(j: number): [number, number] {
    const r = this.rot();
    const [x, y, z] = [this.x[j], this.y[j], this.z ? this.z[j] : 0];
    const qx = r[0] * x + r[3] * y + r[6] * z;
    const qy = r[1] * x + r[4] * y + r[7] * z;
    const [ax, ay] = this.aspect();
    const { zoom, panX, panY } = this.camera;
    const nx = (qx * zoom + panX) * ax;
    const ny = (qy * zoom + panY) * ay;
    return [((nx + 1) / 2) * this.width, ((1 - ny) / 2) * this.height];
  }

  /** Every drawn point's canvas position, for picking and lasso (one pass). */
  projectAll(): [Float32Array, Float32Array] {
    const r = this.rot();
    const [ax, ay] = this.aspect();
    const { zoom, panX, panY } = this.camera;
    const [w2, h2] = [this.width / 2, this.height / 2];
    const sx = new Float32Array(this.n);
    const sy = new Float32Array(this.n);
    const z = this.z;
    for (let j = 0; j < this.n; j++) {
      const [x, y, zz] = [this.x[j], this.y[j], z ? z[j] : 0];
      const qx = r[0] * x + r[3] * y + r[6] * zz;
      const qy = r[1] * x + r[4] * y + r[7] * zz;
      sx[j] = ((qx * zoom + panX) * ax + 1) * w2;
      sy[j] = (1 - (qy * zoom + panY) * ay) * h2;
    }
    return [sx, sy];
  }

  /** Pan by (dx, dy) CSS pixels. */
  panBy(dx: number, dy: number): void {
    const [ax, ay] = this.aspect();
    this.camera.panX += (2 * dx) / this.width / ax;
    this.camera.panY -= (2 * dy) / this.height / ay;
  }

  /** Zoom by `factor` keeping the canvas point (px, py) fixed. */
  zoomAt(factor: number, px: number, py: number): void {
    const [ax, ay] = this.aspect();
    const vx = ((2 * px) / this.width - 1) / ax;
    const vy = (1 - (2 * py) / this.height) / ay;
    const z = Math.max(0.05, Math.min(2000, this.camera.zoom * factor));
    const k = z / this.camera.zoom;
    this.camera.panX = vx - (vx - this.camera.panX) * k;
    this.camera.panY = vy - (vy - this.camera.panY) * k;
    this.camera.zoom = z;
  }

  /** Draw at the next animation frame (coalesced). */
  requestRender(): void {
    if (this.pending !== 0) return;
    this.pending = requestAnimationFrame(() => {
      this.pending = 0;
      this.render();
    });
  }

  render(): void {
    const t0 = performance.now();
    const gl = this.gl;
    this.resize();
    gl.viewport(0, 0, this.canvas.width, this.canvas.height);
    gl.clearColor(0, 0, 0, 0);
    gl.clear(gl.COLOR_BUFFER_BIT);
    if (this.n > 0) {
      gl.useProgram(this.prog);
      gl.enable(gl.BLEND);
      gl.blendFunc(gl.SRC_ALPHA, gl.ONE_MINUS_SRC_ALPHA);
      gl.uniformMatrix3fv(this.loc.u_rot, false, this.rot());
      gl.uniform2f(this.loc.u_pan, this.camera.panX, this.camera.panY);
      gl.uniform1f(this.loc.u_zoom, this.camera.zoom);
      gl.uniform2f(this.loc.u_aspect, ...this.aspect());
      gl.uniform1f(this.loc.u_px, this.dpr);
      this.bind(this.bufPos, 'a_pos', 3, gl.FLOAT, false);
      this.bind(this.bufColor, 'a_color', 4, gl.UNSIGNED_BYTE, true);
      this.bind(this.bufSize, 'a_size', 1, gl.FLOAT, false);
      gl.uniform1f(this.loc.u_sel, 0);
      gl.uniform1f(this.loc.u_dim, this.nSel > 0 ? 0.35 : 1);
      gl.drawArrays(gl.POINTS, 0, this.n);
      if (this.nSel > 0) {
        gl.uniform1f(this.loc.u_sel, 1);
        gl.uniform1f(this.loc.u_dim, 1);
        gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, this.bufSel);
        gl.drawElements(gl.POINTS, this.nSel, gl.UNSIGNED_INT, 0);
      }
    }
    this.frameMs.push(performance.now() - t0);
    if (this.frameMs.length > 240) this.frameMs.shift();
  }

  private bind(buf: WebGLBuffer, name: string, size: number, type: number, norm: boolean): void {
    const gl = this.gl;
    const at = this.attr[name];
    gl.bindBuffer(gl.ARRAY_BUFFER, buf);
    gl.enableVertexAttribArray(at);
    gl.vertexAttribPointer(at, size, type, norm, 0, 0);
  }

  destroy(): void {
    if (this.pending !== 0) cancelAnimationFrame(this.pending);
    const gl = this.gl;
    for (const b of [this.bufPos, this.bufColor, this.bufSize, this.bufSel]) gl.deleteBuffer(b);
    gl.deleteProgram(this.prog);
  }
}

/** Is (x, y) inside the polygon `poly` ([x0, y0, x1, y1, ...]; even-odd rule)? */
export function inPolygon(poly: number[], x: number, y: number): boolean {
  let inside = false;
  const m = poly.length / 2;
  for (let i = 0, k = m - 1; i < m; k = i++) {
    const [xi, yi, xk, yk] = [poly[2 * i], poly[2 * i + 1], poly[2 * k], poly[2 * k + 1]];
    if (yi > y !== yk > y && x < ((xk - xi) * (y - yi)) / (yk - yi) + xi) inside = !inside;
  }
  return inside;
}
