"""hami backends for Huawei Ascend NPUs, one per chip."""
