import QRCode from 'qrcode';
import { h } from './dom.ts';

/** A QR code of `text` as an <img> of an SVG data URL (allowed by the page's CSP: img-src data:). */
export async function qrImage(text: string, alt: string): Promise<HTMLImageElement> {
  const svgText = await QRCode.toString(text, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
  const img = h('img', { alt, class: 'qr', width: '240', height: '240' });
  img.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svgText)}`;
  return img;
}
