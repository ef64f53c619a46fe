# RockNSM host-package guard (seed 000): the host OS is an image; software goes into a toolbox
# container, OS changes into the image build. Interactive shells only; `\dnf` or `command dnf`
# bypasses the guard when it is really needed.
case $- in
  *i*)
    alias yum='echo "RockNSM: this host is image based. Install tools in a toolbox (toolbox create && toolbox enter), or layer OS packages with rpm-ostree install. If you really need yum, run \\yum." >&2; false'
    alias dnf='echo "RockNSM: this host is image based. Install tools in a toolbox (toolbox create && toolbox enter), or layer OS packages with rpm-ostree install. If you really need dnf, run \\dnf." >&2; false'
    alias dnf5='dnf'
    ;;
esac
