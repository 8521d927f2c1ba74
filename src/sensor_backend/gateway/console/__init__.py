"""Static assets of the operations console (issue 9), served by the gateway.

A package (not a loose directory) so that ``importlib.resources`` finds the HTML, JS and CSS
inside an installed wheel exactly as in a source checkout: the console needs no build step,
no CDN and no file outside the package.
"""
