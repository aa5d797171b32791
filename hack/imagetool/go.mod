module baremetal-ccm.io/hack/imagetool

go 1.24
