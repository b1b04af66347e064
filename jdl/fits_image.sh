# The field is drawn by Python (standard library only). The parameters are read from the
# environment, never pasted into the program text; the object's name is made printable
# ASCII for the FITS header (quotes doubled) and escaped for the VOTable.
python3 - <<'PYTHON' || exit 1
import math
import os
import random
import struct
from xml.sax.saxutils import escape, quoteattr

size = int(os.environ["size"])
count = int(os.environ["stars"])
rng = random.Random(int(os.environ["seed"]))
name = os.environ.get("object") or "OPUS test field"
ra0, dec0, scale = 150.0, 2.0, 1.0 / 3600  # degrees; one arcsecond a pixel

stars = []
for number in range(1, count + 1):
    x, y = rng.uniform(0, size - 1), rng.uniform(0, size - 1)
    flux = 10 ** rng.uniform(2, 4)
    dec = dec0 + (y - size / 2) * scale
    ra = ra0 + (x - size / 2) * scale / math.cos(math.radians(dec0))
    stars.append((number, x, y, ra, dec, flux))

# Background noise, then each star as a Gaussian of 1.5 pixels (within 5 sigma).
pixels = [rng.gauss(100.0, 5.0) for _ in range(size * size)]
sigma = 1.5
for _, x, y, _, _, flux in stars:
    peak = flux / (2 * math.pi * sigma * sigma)
    for row in range(max(0, int(y - 5 * sigma)), min(size, int(y + 5 * sigma) + 1)):
        for column in range(max(0, int(x - 5 * sigma)), min(size, int(x + 5 * sigma) + 1)):
            r2 = (column - x) ** 2 + (row - y) ** 2
            pixels[row * size + column] += peak * math.exp(-r2 / (2 * sigma * sigma))


def card(key, value, comment=""):
    if isinstance(value, bool):
        text = f"{'T' if value else 'F':>20}"
    elif isinstance(value, int):
        text = f"{value:>20}"
    elif isinstance(value, float):
        text = f"{value:>20.10E}"
    else:
        quoted = ""
        for c in value:  # at most 68 characters between the quotes, quotes doubled
            piece = "''" if c == "'" else c
            if len(quoted) + len(piece) > 68:
                break
            quoted += piece
        text = "'" + quoted.ljust(8) + "'"
    line = f"{key:<8}= {text}" + (f" / {comment}" if comment else "")
    return line[:80].ljust(80)


printable = "".join(c if " " <= c <= "~" else "?" for c in name)
cards = [
    card("SIMPLE", True, "a FITS file"),
    card("BITPIX", -32, "32-bit IEEE floating point"),
    card("NAXIS", 2),
    card("NAXIS1", size),
    card("NAXIS2", size),
    card("OBJECT", printable, "the field's name"),
    card("CTYPE1", "RA---TAN"),
    card("CTYPE2", "DEC--TAN"),
    card("CRPIX1", size / 2 + 1),
    card("CRPIX2", size / 2 + 1),
    card("CRVAL1", ra0),
    card("CRVAL2", dec0),
    card("CDELT1", -scale),
    card("CDELT2", scale),
    card("BUNIT", "adu"),
    card("ORIGIN", "OPUS fits_image example"),
    "END".ljust(80),
]
header = "".join(cards).encode("ascii")
header += b" " * (-len(header) % 2880)
data = struct.pack(f">{len(pixels)}f", *pixels)
data += b"\0" * (-len(data) % 2880)
with open("field.fits", "wb") as fits:
    fits.write(header + data)

rows = "\n".join(
    f"<TR><TD>{n}</TD><TD>{x:.3f}</TD><TD>{y:.3f}</TD><TD>{ra:.6f}</TD>"
    f"<TD>{dec:.6f}</TD><TD>{flux:.1f}</TD></TR>"
    for n, x, y, ra, dec, flux in stars
)
votable = f"""<?xml version="1.0" encoding="UTF-8"?>
<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">
<RESOURCE type="results">
<TABLE name="stars">
<DESCRIPTION>{escape(name)}</DESCRIPTION>
<FIELD name="id" datatype="int" ucd="meta.id"/>
<FIELD name="x" datatype="double" unit="pix" ucd="pos.cartesian.x"/>
<FIELD name="y" datatype="double" unit="pix" ucd="pos.cartesian.y"/>
<FIELD name="ra" datatype="double" unit="deg" ucd="pos.eq.ra;meta.main"/>
<FIELD name="dec" datatype="double" unit="deg" ucd="pos.eq.dec;meta.main"/>
<FIELD name="flux" datatype="double" unit="adu" ucd="phot.flux"/>
<PARAM name="object" datatype="char" arraysize="*" value={quoteattr(name)}/>
<DATA><TABLEDATA>
{rows}
</TABLEDATA></DATA>
</TABLE>
</RESOURCE>
</VOTABLE>
"""
with open("stars.vot", "w", encoding="utf-8") as table:
    table.write(votable)
PYTHON
