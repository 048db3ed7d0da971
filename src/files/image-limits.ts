// What an image upload may be and what its thumbnail is. The upload code hands the limits to the
// describeImage pool task with each image (tasks are pure functions of their input), and the schema
// and downloads read them from here.

/** Thumbnails fit in this many pixels on their longer side. */
export const THUMBNAIL_MAX_PX = 320;
/** Bigger images (width x height, per frame) are refused before decoding: a small file can declare a huge canvas. */
export const IMAGE_MAX_PIXELS = 100_000_000;
/** describeImage encodes every thumbnail as WebP. */
export const THUMBNAIL_MIME_TYPE = 'image/webp';
