"""DVC stage `pretrain`: reads params.yaml, runs geofoundry.pretrain (see `geofoundry pretrain --help`)."""

from geofoundry.pipeline.runner import main
from geofoundry.pipeline.stages import pretrain

if __name__ == "__main__":
    main(pretrain)
