"""Who may change what: everyone logged in reads; owners and staff change."""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission


class OwnerOrStaffMayChange(BasePermission):
    """Reads for every logged-in user; changes to an object only by staff or the user who created it.

    `owner_of(obj)` on the view names the user; a dataset is its creator's, a site its dataset's.
    """

    message = "only staff or the dataset's creator may change it"

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated)

    def has_object_permission(self, request, view, obj) -> bool:
        if request.method in SAFE_METHODS or request.user.is_staff:
            return True
        owner_id = view.owner_id_of(obj)
        return owner_id is not None and owner_id == request.user.pk


class StaffMayChange(BasePermission):
    """Reads and creation for every logged-in user; changes to shared vocabulary only by staff."""

    message = "only staff may change tags and model runs that others may be using"

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        return request.method in SAFE_METHODS or request.method == "POST" or request.user.is_staff
