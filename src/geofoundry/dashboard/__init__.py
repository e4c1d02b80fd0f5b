"""The dashboard: a local web app over the project's data (``geofoundry dashboard``).

Pages are modules that each add their routes and a nav entry (:mod:`.data_page`: the catalog on a map, facets, live
counts per split, "use this selection"); :mod:`.tiles` serves imagery tiles to any page; :mod:`.app` assembles them;
:mod:`.server` binds it to the loopback interface. The front end is plain HTML/JS in ``static/`` with vendored,
integrity-checked npm builds in ``static/vendor/`` (:mod:`.build_assets`): no request leaves the machine.
"""
