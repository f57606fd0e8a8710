"""lit-edge: offline zero-shot species detection for the field.

The base package (this module, ``bundle``, ``taxonomy``, ``device``, ``cli``) never imports torch,
so the device runtime installs and starts small. ``model``, ``train`` and ``export`` need the
``[train]``/``[export]`` extras and are only imported lazily by the commands that use them.
"""

__version__ = "0.1.0"
