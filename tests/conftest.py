"""Settings for every test.

Servers that tests start do not import the offline images into their fresh stores at start
(``--disable-offline-images``): tests decide which images a node has. The one test of that
default behaviour sets the variable back to false.
"""

import os

os.environ["PODLING_DISABLE_OFFLINE_IMAGES"] = "true"
