"""The API benchmark's floor: a plain DRF ModelViewSet over a trivial model.

It runs through the same middleware, authentication, renderers and database as the
scheduler API, so the difference between the two is what the scheduler API adds.
"""

from rest_framework import serializers, viewsets
from rest_framework.pagination import PageNumberPagination

from tests.testapp.models import BenchItem


class BenchItemSerializer(serializers.ModelSerializer):
    class Meta:
        model = BenchItem
        fields = ["id", "name", "enabled", "updated_at"]


class BenchItemPagination(PageNumberPagination):
    page_size = 50


class BenchItemViewSet(viewsets.ModelViewSet):
    """Trivial rows, a page of 50 at a time."""

    queryset = BenchItem.objects.all()
    serializer_class = BenchItemSerializer
    pagination_class = BenchItemPagination
